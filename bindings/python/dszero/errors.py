"""errors.py -- every failed C call becomes a DSZeroError holding the status
and the message dsz_last_error() gave on this thread, read at once (it is only
valid until the next dszero call on the thread)."""
from . import _capi

STATUS_NAMES = {getattr(_capi, n): n for n in dir(_capi)
                if n == "DSZ_OK" or n.startswith("DSZ_ERR_")}


class DSZeroError(RuntimeError):
    """A failed dszero call.

    ``status`` is the dsz_status number (``dszero.DSZ_ERR_*``), ``status_name``
    its name, ``message`` the library's message, which names the culprit (a
    JSON key path, a parameter, a file)."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, "DSZ_ERR_%d" % self.status)
        self.message = message
        super().__init__("%s (%s)" % (message, self.status_name))


def status_string(status):
    """The library's short description of a status ("invalid argument")."""
    return _capi.lib().dsz_status_string(int(status)).decode()


def check(status):
    """Raises DSZeroError for a failed status; call right after the C call."""
    if status != _capi.DSZ_OK:
        raise DSZeroError(status, _capi.lib().dsz_last_error().decode(errors="replace"))
