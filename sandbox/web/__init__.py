"""The local web sandbox (`shopbot up` without a token): the real bot on the Bot API emulator,
played from a page on 127.0.0.1 as a customer, a staff member and the owner.

``session`` is the sandbox (bot + emulator + page server, the users' actions and what the page
shows), ``server`` the page's HTTP server and JSON API (page.html is the page), ``launch`` the
`shopbot up` entry: prepare the database, start the sandbox, wait for Ctrl-C.
"""

from sandbox.web.launch import prepare, up
from sandbox.web.session import Sandbox

__all__ = ["Sandbox", "prepare", "up"]
