"""The page in the browser: plain HTML, CSS and JavaScript modules shipped in the package,
served by ``bragi serve`` at ``/`` (``web.enabled`` turns it off). No build step, nothing
fetched from elsewhere at run time; the page talks to the same API as any client."""

from bragi.web.assets import Asset, Assets
from bragi.web.routes import web_router

__all__ = ["Asset", "Assets", "web_router"]
