# expect: heredoc
FROM scratch
COPY <<EOF /x
hello
EOF
