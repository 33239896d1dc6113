from stack import topology
from stack.web import serve

service = topology.load().services["tracestore"]
serve("stack.tracestore.app:create_app", port=service.port, host=service.host, factory=True)
