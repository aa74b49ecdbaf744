import sys

from core.app.cli import main

sys.exit(main())
