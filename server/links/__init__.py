"""The link graph of parcels: shared phones, addresses, credit codes, outlets, destinations and images."""
