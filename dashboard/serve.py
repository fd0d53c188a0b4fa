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


def main() -> None:
    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
