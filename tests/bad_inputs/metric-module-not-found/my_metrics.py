# In the folder the command runs in: never imported implicitly (name it as ./my_metrics.py).
def score(output, example):
    return 1.0
