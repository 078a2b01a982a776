"""Training the gateway's classifiers (scikit-learn; only in the ``train`` extra).

Nothing here is imported at run time: the gateway loads the shipped artifact
with numpy alone (``tandem_gateway.guard.classifier``).
"""
