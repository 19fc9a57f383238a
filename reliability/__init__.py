"""Fault injection for OpenSMM: `python -m reliability [scenario]` kills services, the broker and
the database under load on a private copy of the dev stack and checks nothing is lost or doubled."""
