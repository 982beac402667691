make venv                   # .venv/ from uv.lock (Python 3.11; installs uv with pip when missing)
source .venv/bin/activate   # the commands below use the project's environment
