# expect: context
FROM scratch
COPY ../../etc/passwd /x
