import sys

from shadowproxy.cli import main

sys.exit(main())
