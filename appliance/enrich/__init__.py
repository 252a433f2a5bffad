"""Enrichment (docs/contract.md §6): pure functions over the request and its events, readers injected.

`client_ip` (which address a request comes from), `geo` (where that address is), `useragent`
(what sent it: device, server or bot), `location` (path, origin, query, hash) and `referrer`
(where the visitor came from). Nothing here writes; the readers (mmdb, referrer table,
ua-parser) are opened once by the gateway's lifespan and passed in.
"""
