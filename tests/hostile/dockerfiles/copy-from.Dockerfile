# expect: --from
FROM scratch AS a
FROM scratch
COPY --from=a /x /x
