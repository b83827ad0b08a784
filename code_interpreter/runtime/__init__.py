"""What runs inside the sandbox: the Python zygote (``zygote*.py``) and the C helpers.

scripts/install-sandbox.sh copies the ``zygote*.py`` modules into the runtime (under
``zygote/code_interpreter/runtime/``), where the runtime's own interpreter imports them; they use
the standard library only and must stay runnable on the runtime's Python 3.11.
"""
