"""Start the dashboard: ``python -m dashboard.serve [streamlit options]`` (what scripts/app.sh runs).

Equivalent to ``streamlit run app.py``, except that it tells Streamlit up front that ``pages/`` holds
st.navigation pages rather than legacy auto-discovered ones. Without that, the first deep link after a
server start (``/tradeoff?alpha=0.3``) shows a spurious "Page not found" notice before routing.
"""

import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

APP = Path(__file__).resolve().parent.parent / "app.py"


# A viewer's toolbar (no Deploy button, no developer menu), no usage statistics sent anywhere, and no forced
# full garbage collection after every script run: Streamlit's default gc.collect(2) walks every object of the
# process (the open stores' tables, the shared chart specs, plotly's validators: ~180k objects, 60-90 ms on
# this 2-core machine) while holding the GIL, so each slider move's last messages and its script_finished
# waited for it. Python's own generational collector still runs. A command-line flag of the same name wins.
DEFAULTS = {"--client.toolbarMode": "viewer", "--browser.gatherUsageStats": "false", "--runner.postScriptGC": "false"}


def main() -> None:
    PagesManager.uses_pages_directory = False
    given = {arg.split("=", 1)[0] for arg in sys.argv[1:]}
    extra = [f"{flag}={value}" for flag, value in DEFAULTS.items() if flag not in given]
    sys.argv = ["streamlit", "run", str(APP), *extra, *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
