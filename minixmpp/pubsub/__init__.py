"""Publish-subscribe (XEP-0060), shared by mod_pep (XEP-0163, one service per account) and
mod_pubsub (a ``pubsub.HOST`` component): ``service.Service`` (nodes, access, items,
notifications), ``protocol`` (the IQ handlers and disco), ``config`` (node configuration and
its forms), ``store`` (the core's map and archive stores), ``rsm`` (XEP-0059 paging)."""
