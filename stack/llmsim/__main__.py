from stack import topology
from stack.web import serve

service = topology.load().services["llmsim"]
serve("stack.llmsim.app:app", port=service.port, host=service.host)
