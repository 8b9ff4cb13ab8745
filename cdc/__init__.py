"""wpcdc: WordPress change-data-capture from the MySQL/MariaDB binlog to Kafka.

The pipeline, one way: source (binlog rows) → normalize (WordPress row changes) → assemble (post
events) → encode (Kafka records) → sink (Kafka) → checkpoint (compacted topic).
"""

__version__ = "0.1.0"
