# expect: comes at or after this one
# Stage `first` copies from a stage below it, and the last stage builds on `first`.
FROM scratch AS first
COPY --from=later /x /x
FROM scratch AS later
FROM first
