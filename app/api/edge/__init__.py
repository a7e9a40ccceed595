"""The edge: what tesoro does to every HTTP request before and after the framework, one
concern per module (request ids, limits, authentication of writes, HEAD, compression,
metrics and the access line, unexpected errors), on the ASGI base of `base`."""
