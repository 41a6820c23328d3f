import sys

from labelgate.cli.main import main

sys.exit(main())
