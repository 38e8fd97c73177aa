"""Sorter links: the link interface, telegram streams (TCP, serial), Modbus TCP, and simulators."""
