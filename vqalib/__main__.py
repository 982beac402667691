import sys

from vqalib.cli import main

sys.exit(main())
