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


# A viewer's toolbar (no Deploy button, no developer menu) and no usage statistics sent anywhere; a
# command-line flag of the same name given by the user wins.
DEFAULTS = {"--client.toolbarMode": "viewer", "--browser.gatherUsageStats": "false"}


def main() -> None:
    PagesManager.uses_pages_directory = False
    given = {arg.split("=", 1)[0] for arg in sys.argv[1:]}
    extra = [f"{flag}={value}" for flag, value in DEFAULTS.items() if flag not in given]
    sys.argv = ["streamlit", "run", str(APP), *extra, *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
