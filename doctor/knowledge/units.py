"""Byte units: binary (what memory and llama.cpp report) and decimal (what disks and
downloads are sold in). One definition for every module."""

KiB = 1024
MiB = 1024**2
GiB = 1024**3
GB = 1_000_000_000
