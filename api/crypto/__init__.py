"""Field-level encryption: AEAD suites, the keyring of master keys, envelope encryption of fields
under per-tenant data keys, and keyed blind indexes for equality search.
"""
