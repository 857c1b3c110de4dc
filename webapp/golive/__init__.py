"""The go/no-go board (admin records; managers and finance read)."""
