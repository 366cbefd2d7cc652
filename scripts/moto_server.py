"""moto in server mode, with two fixes the tests rely on.

1. One request at a time. moto's server handles requests on threads and evaluates a
   conditional write's condition and the write itself without a lock, so two concurrent
   conditional writes can both succeed — which real DynamoDB (atomic per item and per
   transaction) never allows. The moto application runs behind one lock here.
2. Streams that survive a cancelled transaction. Before a TransactWriteItems, moto deep-copies
   each table it touches, stream records included, and on cancellation puts the copy in the
   table's place: every transaction costs a copy of the whole stream (quadratic over a test
   run), and the stream readers, which hold the original shard, stop seeing new records after
   the first cancelled transaction. Here the shard is shared with the copy, and a cancelled
   transaction drops the stream records its partial writes added, as DynamoDB (which never
   shows them) would.

Usage: python scripts/moto_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard
from werkzeug.serving import run_simple

StreamShard.__deepcopy__ = lambda self, memo: self
_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    marks = [
        (t.stream_shard, len(t.stream_shard.items))
        for t in self.tables.values()
        if t.stream_shard is not None
    ]
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for shard, n in marks:
            del shard.items[n:]
        raise


DynamoDBBackend.transact_write_items = transact_write_items

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        # Consume the response inside the lock: the work may happen while it is produced.
        return list(app(environ, start_response))


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
