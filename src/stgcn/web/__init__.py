"""The local web app (``stgcn serve``, the ``[web]`` extra: Starlette, uvicorn, python-multipart).

:func:`stgcn.web.app.create_app` builds the ASGI app; :mod:`stgcn.web.upload` receives uploads,
:mod:`stgcn.web.workers` runs inference in worker processes, :mod:`stgcn.web.jobs` is what they run.
"""
