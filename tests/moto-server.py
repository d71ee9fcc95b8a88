"""moto's server with every request handled one at a time.

moto's TransactWriteItems backs up the whole table and restores it when a condition fails; two
requests handled at once can therefore undo a write that DynamoDB would have kept (a conflicting
transaction restores the table from before a concurrent winner). DynamoDB itself is linearisable per
item, so the tests serialise requests: connections stay concurrent, their handling does not.
Usage: python moto-server.py HOST PORT
"""
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


class OneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


host, port = sys.argv[1], int(sys.argv[2])
run_simple(host, port, OneAtATime(DomainDispatcherApplication(create_backend_app)), threaded=True,
           request_handler=MotoRequestHandler)
