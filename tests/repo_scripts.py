"""Import a module from one of the repository's script folders (benchmarks/, scripts/),
which are not packages: the folder is on sys.path only while the module (and the siblings
it imports) loads."""
import importlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_script(folder, name):
    path = os.path.join(REPO, folder)
    sys.path.insert(0, path)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(path)
