"""``medzoo serve``: an OpenAI-compatible HTTP server with dynamic batching and a chat page."""

from __future__ import annotations

import warnings

import click

from medzoo.core.dtypes import DTYPE_NAMES


@click.command("serve")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", default=None, envvar="MEDZOO_API_KEY", help="Require 'Authorization: Bearer KEY'.")
@click.option("--image-folder", type=click.Path(exists=True, file_okay=False), default=None,
              help="Allow image_url values that are paths inside this folder.")
@click.option("--model-name", default=None, help="Model id clients send (default: the run's recipe name for a run's model folder, else the folder's name).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1...")
@click.option("--dtype", type=click.Choice(DTYPE_NAMES), default=None)
@click.option("--batch-window-ms", default=10.0, show_default=True, help="Wait this long to gather a batch.")
@click.option("--batch-max-wait-ms", default=50.0, show_default=True,
              help="After the window, keep gathering while requests are still being read, up to this long.")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--max-pending", default=256, show_default=True, type=click.IntRange(1), help="Queued requests beyond this get 503.")
@click.option("--max-tokens-cap", default=1024, show_default=True, type=click.IntRange(1))
@click.option("--max-images", default=1, show_default=True, type=click.IntRange(0), help="Images per request.")
@click.option("--max-image-mb", default=10.0, show_default=True)
@click.option("--max-image-pixels", default=4096 * 4096, show_default=True, type=click.IntRange(1))
@click.option("--max-body-mb", default=20.0, show_default=True)
@click.option("--max-prompt-chars", type=click.IntRange(1), default=None,
              help="Characters of text per request, checked before tokenising (default: 8 x the context length).")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads for torch (default: the usable cores, fixed; MEDZOO_THREADS=auto follows the free cores).")
def serve_command(model_dir, host, port, api_key, image_folder, model_name, device, dtype, batch_window_ms,
                  batch_max_wait_ms, max_batch_size, max_pending, max_tokens_cap, max_images, max_image_mb, max_image_pixels,
                  max_body_mb, max_prompt_chars, threads) -> None:
    """Serve the model in MODEL_DIR: POST /v1/chat/completions, GET /v1/models, /health, and a chat page at /."""
    import uvicorn
    from PIL import Image

    from medzoo.app.serving.app import ServeConfig, create_app
    from medzoo.app.serving.batcher import BatchingSettings
    from medzoo.app.serving.guard import LOOPBACK_HOSTS
    from medzoo.app.serving.limits import ServeLimits
    from medzoo.app.serving.loading import load_engine

    limits = ServeLimits(
        max_body_bytes=int(max_body_mb * 1024 * 1024), max_image_bytes=int(max_image_mb * 1024 * 1024),
        max_image_pixels=max_image_pixels, max_images_per_request=max_images, max_tokens_cap=max_tokens_cap,
        default_max_tokens=min(256, max_tokens_cap), max_prompt_chars=max_prompt_chars,
    )
    # PIL's own decompression-bomb guard at the same limit, as a hard error, behind the header check
    Image.MAX_IMAGE_PIXELS = max_image_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and api_key is None:
        click.echo(f"warning: serving on {host} without --api-key: anyone who can reach it can use the model",
                   err=True)
    if threads:
        from medzoo.core.cpu_threads import pin_threads

        pin_threads(threads)
    from medzoo.app.serving.naming import served_model_name

    engine = load_engine(model_dir, device=device, dtype=dtype)
    config = ServeConfig(
        model_name=model_name or served_model_name(model_dir), api_key=api_key, image_folder=image_folder,
        limits=limits, allowed_hosts=LOOPBACK_HOSTS if loopback else None,
        batching=BatchingSettings(window_s=batch_window_ms / 1000, max_wait_s=batch_max_wait_ms / 1000,
                                  max_batch_size=max_batch_size,
                                  max_pending=max_pending),
    )
    click.echo(f"serving {config.model_name!r} on http://{host}:{port} (chat page at /)", err=True)
    uvicorn.run(create_app(engine, config), host=host, port=port, log_level="info")
