# expect: ${
FROM scratch
ENV A=${B
