"""The station agent: identify, check, classify, decide, act, record and sync each parcel."""
