# expect: FROM
ENV A=b
COPY x /x
