import sys

from annpred.cli.app import main

sys.exit(main())
