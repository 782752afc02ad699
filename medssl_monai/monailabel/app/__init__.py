"""The MONAI Label app folder (``main.py``); pass this folder to ``monailabel start_server --app``."""
