"""`accelerate launch -m w2s_core.training JOB_DIR`: train the job in JOB_DIR."""

from w2s_core.training.loop import main

if __name__ == "__main__":
    main()
