# expect: does not download
FROM scratch
ADD https://example.invalid/x.tar.gz /opt/
