#!/bin/sh
# A pipe and process load: compress and decompress 64 MiB through pipes, sort text, 3 times.
for i in 1 2 3; do
  head -c 64M /dev/urandom | gzip -1 | gzip -dc | sha1sum > /dev/null
  seq 1 300000 | sort -R | sort -n | tail -1 > /dev/null
done
