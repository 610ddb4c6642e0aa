"""The device domain: the registry of attached devices and the regions they serve
(``registry``), remote device sessions (``remote``), devices running in the server
(``in_process``) and what a region answers while its device is away (``absent``)."""
