"""Code both planes use: generated protobuf code (``shared.pb``), crypto, pricing.

Nothing here imports Django, the control plane or the data plane.
"""
