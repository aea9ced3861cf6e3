def test_warm(float16_model_dir, dynamic_model_dir, int8_model_dir):
    pass
