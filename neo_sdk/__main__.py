import sys

from neo_sdk.cli import main

sys.exit(main())
