import sys

from shadowproxy.cli import entry

sys.exit(entry())
