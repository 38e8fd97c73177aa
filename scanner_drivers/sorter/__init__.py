"""Sorter links: interface and limits, telegrams (TCP, serial), Modbus TCP, destination requests, fakes."""
