# expect: FROM
ENV A=b \
