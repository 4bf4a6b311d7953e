"""``python -m airflow_mlops.cli``."""

import sys

from airflow_mlops.cli import main

sys.exit(main())
