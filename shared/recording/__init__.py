"""Session recording: format v1, the sans-I/O recorder, signing, the S3 store, upload and verification.

``format``, ``recorder`` and ``signing`` (apart from ``KmsSigner``) are pure; ``store`` and ``verify``
do blocking S3 I/O; ``uploader`` is the asyncio side the proxy drives.
"""
