"""Generated protobuf and gRPC code for ``package tandem.v1``.

Every other module in this folder is written by grpcio-tools from
``protos/tandem/v1/*.proto`` during the build (``pip install`` or ``make proto``)
and is never edited by hand.
"""
