from stack import topology
from stack.web import serve

service = topology.load().services["gateway"]
serve("stack.gateway.app:app", port=service.port, host=service.host)
