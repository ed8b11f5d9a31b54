# expect: not found there
# A path climbing out of the stage stays inside it: the runner's /etc/passwd is never read.
FROM scratch AS a
FROM scratch
COPY --from=a /../../../../../etc/passwd /x
