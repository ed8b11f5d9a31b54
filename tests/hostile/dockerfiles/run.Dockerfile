# expect: RUN
FROM scratch
RUN echo hi
