#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" order-tracking-sweep
