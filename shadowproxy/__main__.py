import sys

from shadowproxy.cli.main import main

sys.exit(main())
